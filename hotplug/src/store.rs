//! [`Store`]: the xenstore operations device setup needs, and their implementation over
//! xenctl's client.

/// Read, list and write xenstore nodes.
pub trait Store {
    /// A node's value; `None` if it does not exist (or cannot be read).
    fn get(&self, path: &str) -> Option<String>;
    /// A directory's children; empty if it does not exist.
    fn list(&self, path: &str) -> Vec<String>;
    /// Writes a node.
    fn put(&self, path: &str, value: &str) -> Result<(), String>;
}

impl Store for xenctl::Xenstore {
    fn get(&self, path: &str) -> Option<String> {
        self.read_opt(path).ok().flatten()
    }
    fn list(&self, path: &str) -> Vec<String> {
        self.directory(path).unwrap_or_default()
    }
    fn put(&self, path: &str, value: &str) -> Result<(), String> {
        self.write(path, value).map_err(|e| e.to_string())
    }
}
