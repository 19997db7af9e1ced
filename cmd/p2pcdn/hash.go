package main

import (
	"errors"

	"github.com/urfave/cli/v2"
)

func hashCommand() *cli.Command {
	return &cli.Command{
		Name:  "hash",
		Usage: "not implemented yet",
		Action: func(*cli.Context) error {
			return errors.New("hash: not implemented yet")
		},
	}
}
