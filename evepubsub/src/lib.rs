//! EVE pubsub (skeleton; being written).
