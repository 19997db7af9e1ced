package main

import (
	"errors"

	"github.com/urfave/cli/v2"
)

func mediatorCommand() *cli.Command {
	return &cli.Command{
		Name:  "mediator",
		Usage: "not implemented yet",
		Action: func(*cli.Context) error {
			return errors.New("mediator: not implemented yet")
		},
	}
}
