"""Models: checkpoint folders, references, Hub downloads, loading onto a device, the catalogue and the model cache.
The only code that touches the file system or the network for weights."""
