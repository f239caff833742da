"""What a disconnected region needs, carried across in one folder with one signed manifest: `export.py`
writes it (the only code that signs), `verify.py` checks it offline before anything is imported."""
