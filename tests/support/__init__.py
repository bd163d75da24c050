"""What the tests share: fixtures, harnesses and load generators."""
