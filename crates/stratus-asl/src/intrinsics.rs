//! Intrinsic functions (`States.Format`, `States.Array`, ...).
