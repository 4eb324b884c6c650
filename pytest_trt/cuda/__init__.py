"""The CUDA layer: one face (api) over cuda-python and pycuda."""
