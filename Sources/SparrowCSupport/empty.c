// Header-only module: see include/SparrowCSupport.h.
