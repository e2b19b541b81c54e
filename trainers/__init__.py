"""Trainers: masked two-stage (Q)LoRA that builds the S1 and S2 adapters."""
