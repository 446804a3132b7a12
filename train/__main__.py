"""Train the MNIST network and export it to ONNX: python -m train --help."""

import sys

from train.cli import main

sys.exit(main())
