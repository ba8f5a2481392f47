"""Publishing: results pages, their index, the README's headline, the recipe catalogue and the SSL
verdicts, each a module, all drawn from one typed page model (smallvision.publish.model) that a
finished run's files fill once (smallvision.publish.collect). Figures are never typed by hand:
every number on a page comes from a run's evaluation files, and every comparison from
smallvision.publish.compare, whose verdicts the report uses too.

  python -m smallvision.publish                     # redraw every page, the index, the headline, the catalogue
  python -m smallvision.publish results TRACK [--workspace DIR]   # docs/results/TRACK.{json,md} from a run
  python -m smallvision.publish compare TRACK:ARM TRACK:ARM        # one arm minus another, paired where it can
"""
