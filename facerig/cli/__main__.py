from facerig.cli.app import main

main()
