import sys

from trainers.timm.main import main

sys.exit(main())
