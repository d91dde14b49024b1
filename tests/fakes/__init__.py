"""Local fakes of external services, speaking their real wire formats; tests start them on 127.0.0.1:0."""
