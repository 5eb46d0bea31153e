//! Independent EVE pubsub test peer (skeleton; being written).
