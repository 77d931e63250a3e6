// SparrowSampling module
