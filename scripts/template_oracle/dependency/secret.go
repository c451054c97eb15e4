// Package dependency mirrors the shape of consul-template's dependency.Secret, so that templates
// and error messages ("*dependency.Secret") see the same type as under Vault Agent.
package dependency

// Secret has consul-template's field names and order.
type Secret struct {
	RequestID     string
	LeaseID       string
	LeaseDuration int
	Renewable     bool
	Data          map[string]interface{}
	Warnings      []string
	Auth          *SecretAuth
	WrapInfo      *SecretWrapInfo
}

// SecretAuth is never set by the oracle; it exists so that .Auth prints <nil> as in Vault Agent.
type SecretAuth struct {
	ClientToken   string
	Accessor      string
	Policies      []string
	Metadata      map[string]string
	LeaseDuration int
	Renewable     bool
}

// SecretWrapInfo is never set by the oracle either.
type SecretWrapInfo struct {
	Token           string
	TTL             int
	CreationTime    string
	WrappedAccessor string
}
