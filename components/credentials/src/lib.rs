//! GET /v2/admin/dockerRegistrySecrets/{name}/credentials: the Kubernetes Secret manifest (puller).

spin_bridge::endpoint_component!(CREDENTIALS, domain::endpoints::credentials);
