// SparrowKernels module
