// Package campaign holds the randomised wire campaign: random header sets, raw bytes included,
// against random passthrough settings and allowlists, through every client transport, checked at
// a raw-socket upstream against a model of the passthrough spec written from its text.
package campaign
