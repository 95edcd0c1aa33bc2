import sys

from vtp.cli import main

sys.exit(main())
