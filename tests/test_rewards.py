"""Graders as TRL reward functions, and one real GRPO step with such a reward."""
import math
import socket

import pytest

from lorag_harness.errors import LoragError
from lorag_harness.api.types import Pair
from lorag_harness.serving.rewards import relevance_reward


@pytest.fixture(scope="module")
def reward(tiny_model_dir):
    return relevance_reward("base", base_model=tiny_model_dir, max_doc_tokens=40)


def test_reward_is_p_relevant_of_query_and_completion(reward):
    completions = ["Oil prices rose as crude stocks fell.", "The bank cut its lending rate."]
    got = reward(["p1", "p2"], completions, query=["crude oil prices", "crude oil prices"])
    want = reward.grader.grade([Pair("crude oil prices", c, False) for c in completions])
    assert got == pytest.approx([j.score for j in want]) and all(0 < g < 1 for g in got)
    assert reward.__name__ == "relevance_base"


def test_conversational_prompts_and_completions(reward):
    prompts = [[{"role": "system", "content": "s"}, {"role": "user", "content": "grain exports"}]]
    completions = [[{"role": "assistant", "content": "Wheat shipments doubled."}]]
    got = reward(prompts, completions)  # no query column: the query is the last user message
    assert got == pytest.approx([reward.grader.grade([Pair("grain exports", "Wheat shipments doubled.", False)])[0].score])


def test_document_column_grades_the_completion_as_a_query(reward):
    doc_reward = relevance_reward(reward.grader, document_column="passage")
    got = doc_reward(["p"], ["crude oil prices"], passage=["Oil prices rose."])
    assert got == pytest.approx([reward.grader.grade([Pair("crude oil prices", "Oil prices rose.", False)])[0].score])
    with pytest.raises(LoragError, match="no column 'passage'"):
        doc_reward(["p"], ["q"], query=["x"])


def test_a_failed_pair_gets_none():
    pytest.importorskip("openai")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = relevance_reward("openai:m", options={"judge_base_url": f"http://127.0.0.1:{port}/v1", "judge_retries": 0,
                                                 "judge_timeout": 2})
    assert dead(["p", "p"], ["a", "b"], query=["q", "q"]) == [None, None]


def test_bad_specs_are_clear_errors():
    with pytest.raises(LoragError, match="unknown grader"):
        relevance_reward("nonesuch")
    with pytest.raises(LoragError, match="relevance_reward"):
        relevance_reward("base", no_such_option=1)


@pytest.mark.integration  # a TRL GRPO step
def test_one_grpo_step_with_the_relevance_reward(tiny_model_dir, tmp_path, reward):
    trl = pytest.importorskip("trl")
    from datasets import Dataset

    data = Dataset.from_dict({"prompt": ["Write one line about crude oil prices.", "Write one line about grain exports."],
                              "query": ["crude oil prices", "grain exports"]})
    calls = []

    def recorded(prompts, completions, **kwargs):
        out = reward(prompts, completions, **kwargs)
        calls.append((list(kwargs["query"]), list(completions), out))
        # a step on rewards that tie within a group changes nothing: spread them so the update must happen
        return [r + 0.1 * i for i, r in enumerate(out)]

    recorded.__name__ = reward.__name__
    config = trl.GRPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=2, num_generations=2,
                            max_completion_length=8, max_steps=1, learning_rate=1e-4, report_to=[], use_cpu=True,
                            logging_steps=1, save_strategy="no", seed=0, dataloader_num_workers=0)
    trainer = trl.GRPOTrainer(model=tiny_model_dir, reward_funcs=[recorded], args=config, train_dataset=data)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    assert trainer.state.global_step == 1 and calls
    queries, completions, rewards = calls[0]
    assert set(queries) <= {"crude oil prices", "grain exports"} and len(completions) == len(rewards) == 2
    assert all(isinstance(r, float) and 0 <= r <= 1 for r in rewards)
    logged = [h for h in trainer.state.log_history if f"rewards/{reward.__name__}/mean" in h]
    assert logged and math.isclose(logged[0][f"rewards/{reward.__name__}/mean"], sum(rewards) / 2 + 0.05, rel_tol=1e-4)
    assert any(not (p.detach() == before[n]).all() for n, p in trainer.model.named_parameters())
