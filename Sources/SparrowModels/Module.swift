// SparrowModels module
