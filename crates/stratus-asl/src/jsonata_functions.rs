//! The functions Step Functions adds to JSONata (`$partition`, `$range`,
//! `$hash`, `$random`, `$uuid`, `$parse`).
