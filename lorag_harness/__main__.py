from lorag_harness.cli.app import main

main()
