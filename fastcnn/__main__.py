"""``python -m fastcnn``: the same as the ``fastcnn`` command."""

from fastcnn.cli import main

raise SystemExit(main())
