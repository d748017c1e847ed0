import sys

from crimejob.cli import main

sys.exit(main())
