from conveyor.cli import app

app(prog_name="conveyor")
