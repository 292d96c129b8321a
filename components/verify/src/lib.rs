//! POST /v2/admin/dockerRegistrySecrets/{name}/verification (admin; operator for managed ones), and the
//! check create and patch ask for with `?verify=true`: the only component that reaches the network.

spin_bridge::endpoint_component!(VERIFY, domain::endpoints::verify);
