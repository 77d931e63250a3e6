// SparrowTokenizer module
