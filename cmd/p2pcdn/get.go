package main

import (
	"errors"

	"github.com/urfave/cli/v2"
)

func getCommand() *cli.Command {
	return &cli.Command{
		Name:  "get",
		Usage: "not implemented yet",
		Action: func(*cli.Context) error {
			return errors.New("get: not implemented yet")
		},
	}
}
