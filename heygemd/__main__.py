import sys

from heygemd.cli import main

sys.exit(main())
