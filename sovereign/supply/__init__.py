"""What is installed where: the hash-pinned locks (`lock.py`), the CycloneDX SBOM of each image built from
them (`sbom.py`), and the container images themselves (`images.py`)."""
