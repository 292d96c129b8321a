//! GET /v2/admin/dockerRegistrySecrets[/{name}]: list secrets and read one's metadata (viewer); never decrypts.

spin_bridge::endpoint_component!(METADATA, domain::endpoints::read);
