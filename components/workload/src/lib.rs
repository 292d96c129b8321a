//! GET and PUT /v2/admin/workloadIdentity: the tenant's trusted service-account issuers and their
//! bindings to secrets (workload identity at pull time).

spin_bridge::endpoint_component!(METADATA, domain::endpoints::workload);
