//! DELETE /v2/admin/dockerRegistrySecrets/{name}: delete a secret (admin; operator for managed ones).

spin_bridge::endpoint_component!(METADATA, domain::endpoints::delete);
