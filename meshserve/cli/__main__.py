import sys

from meshserve.cli.main import main

sys.exit(main())
