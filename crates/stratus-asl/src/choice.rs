//! Choice rules (JSONPath mode): comparison operators, type tests, And / Or
//! / Not.
