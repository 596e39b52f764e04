package config

import (
	"strings"

	"github.com/hashicorp/hcl/v2"
)

var apiSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "token", Required: true}, {Name: "redact_auth"}},
}

func (d *decoder) api(b *hcl.Block) *API {
	if b == nil {
		return nil
	}
	api := &API{DeclRange: b.DefRange}
	c := d.content(b.Body, apiSchema)
	if attr := c.Attributes["token"]; attr != nil && d.str(attr, &api.Token) {
		if len(api.Token) < MinAPITokenLength || strings.TrimSpace(api.Token) != api.Token {
			d.attrError(attr, "Invalid API token",
				"The API token must be at least %d characters without surrounding spaces (got %d); generate one with `openssl rand -hex 32` and pass it with env(\"API_TOKEN\").",
				MinAPITokenLength, len(api.Token))
		}
	}
	if attr := c.Attributes["redact_auth"]; attr != nil && d.strList(attr, &api.RedactAuth) {
		for _, f := range api.RedactAuth {
			if f == "" {
				d.attrError(attr, "Invalid redact_auth", "Field names must not be empty.")
				break
			}
		}
	}
	return api
}
