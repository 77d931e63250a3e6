// SparrowEngine module
