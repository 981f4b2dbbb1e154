from medground_eval.cli import main

main()
