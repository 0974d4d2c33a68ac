import sys
from pathlib import Path

# tiny_train.py is both a script (run by subprocess and torchrun) and a module for in-process tests
sys.path.insert(0, str(Path(__file__).parent))
