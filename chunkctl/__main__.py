from chunkctl.cli import main

main()
