//! GET /v2/admin/dockerRegistrySecrets[/{name}]: list secrets and read one's metadata (viewer); never decrypts.
//! Spin routes these paths here directly, so a read costs one instance; their other methods
//! (create, modify, delete) are forwarded to the components that serve them.

spin_bridge::endpoint_component!(METADATA, domain::endpoints::read, forwarding_all_but = "list");
