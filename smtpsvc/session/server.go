package session

import (
	"github.com/emersion/go-smtp"

	"github.com/ds2mb/ds2mb/smtpsvc/config"
)

func newServer(vs *config.VirtualServer, env *Env) *smtp.Server {
	s := smtp.NewServer(nil)
	s.Domain = vs.FQDN
	s.ReadTimeout = vs.ConnectionTimeout
	s.WriteTimeout = vs.ConnectionTimeout
	return s
}
