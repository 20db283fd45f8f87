from bpo.cli import main

main()
