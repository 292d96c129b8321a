//! POST /v2/admin/dockerRegistrySecrets: create a secret (admin; operator for managed ones).

spin_bridge::endpoint_component!(CREDENTIALS, domain::endpoints::create);
