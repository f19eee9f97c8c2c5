"""`python3 -m bench ...` (from integration/): see bench/main.py or --help."""
import sys

from .main import main

sys.exit(main())
