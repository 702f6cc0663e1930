"""fastcnn's built-in backends, each found through the ``fastcnn.backends`` entry points."""
