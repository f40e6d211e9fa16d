from tickwire.cli import main

main()
