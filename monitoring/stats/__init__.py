"""Pure numpy/scipy statistics for monitoring. No Django import, ever: a test imports this
package with Django unconfigured to prove it."""
