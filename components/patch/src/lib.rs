//! PATCH /v2/admin/dockerRegistrySecrets/{name}: replace a secret's credentials (admin; operator for managed ones).

spin_bridge::endpoint_component!(CREDENTIALS, domain::endpoints::modify);
