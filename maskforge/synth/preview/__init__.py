"""Pictures of what synthesis makes: contact sheets of an output folder (`sheet`) and of the mask
templates (`templates`). Reads files the run wrote; imports run.records, render and sampling.
"""
