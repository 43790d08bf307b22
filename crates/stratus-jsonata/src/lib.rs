//! JSONata (<https://docs.jsonata.org/>): the query and transformation
//! language Step Functions accepts in `{% %}` expressions.
