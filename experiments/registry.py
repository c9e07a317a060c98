"""The claims and the experiments that measure them, in one place.

``SOURCES`` are the documents and papers cited (title and author); ``STATEMENTS``
the claims as the report states them (a title, the quote, its sources);
``EXPERIMENTS`` the modules of ``experiments.claims`` that measure them, by the
name ``python -m experiments NAME`` takes. C1..C15 come from the three source
documents, E1.. from papers behind methods the library adds beyond them.
"""

from __future__ import annotations

from typing import NamedTuple


class Source(NamedTuple):
    """A cited document: its title, author(s) and where it appeared."""

    title: str
    author: str
    where: str
    short: str  # for the summary tables

    def __str__(self) -> str:
        return f"{self.author}, *{self.title}*, {self.where}"


SOURCES = {
    "mccaffrey": Source(
        "Neural Network Momentum", "James D. McCaffrey", "blog post, 2017", "McCaffrey"
    ),
    "understanding": Source(
        "Understanding Momentum in Neural Network Optimization",
        "author not named in the document",
        "web article",
        "Understanding Momentum",
    ),
    "ema": Source(
        "Momentum (gradient descent, moving averages and momentum)",
        "author not named in the document",
        "web article",
        "Momentum (EMA)",
    ),
    "odonoghue": Source(
        "Adaptive restart for accelerated gradient schemes",
        "B. O'Donoghue and E. Candès",
        "Foundations of Computational Mathematics 15, 2015",
        "O'Donoghue & Candès 2015",
    ),
    "qhm": Source(
        "Quasi-hyperbolic momentum and Adam for deep learning",
        "J. Ma and D. Yarats",
        "ICLR 2019",
        "Ma & Yarats 2019",
    ),
    "aggmo": Source(
        "Aggregated momentum: stability through passive damping",
        "J. Lucas, S. Sun, R. Zemel and R. Grosse",
        "ICLR 2019",
        "Lucas et al. 2019",
    ),
    "demon": Source(
        "Demon: improved neural network training with momentum decay",
        "J. Chen, C. Wolfe, Z. Li and A. Kyrillidis",
        "ICASSP 2022",
        "Chen et al. 2022",
    ),
    "shallue": Source(
        "Measuring the effects of data parallelism on neural network training",
        "C. Shallue, J. Lee, J. Antognini, J. Sohl-Dickstein, R. Frostig and G. Dahl",
        "JMLR 20, 2019",
        "Shallue et al. 2019",
    ),
    "zhang": Source(
        "Which algorithmic choices matter at which batch sizes? Insights from a "
        "noisy quadratic model",
        "G. Zhang, L. Li, Z. Nado, J. Martens, S. Sachdeva, G. Dahl, C. Shallue and R. Grosse",
        "NeurIPS 2019",
        "Zhang et al. 2019",
    ),
    "dodge": Source(
        "Show your work: improved reporting of experimental results",
        "J. Dodge, S. Gururangan, D. Card, R. Schwartz and N. Smith",
        "EMNLP 2019",
        "Dodge et al. 2019",
    ),
    "yellowfin": Source(
        "YellowFin and the art of momentum tuning",
        "J. Zhang and I. Mitliagkas",
        "SysML 2019",
        "Zhang & Mitliagkas 2019",
    ),
    "srsgd": Source(
        "Scheduled restart momentum for accelerated stochastic gradient descent",
        "B. Wang, T. M. Nguyen, A. L. Bertozzi, R. G. Baraniuk and S. J. Osher",
        "arXiv:2002.10583, 2020",
        "Wang et al. 2020",
    ),
    "cautious": Source(
        "Cautious optimizers: improving training with one line of code",
        "K. Liang, L. Chen, B. Liu and Q. Liu",
        "arXiv:2411.16085, 2024",
        "Liang et al. 2024",
    ),
}


class Statement(NamedTuple):
    """A claim as the report states it: a title, a quote and the keys of its sources."""

    title: str
    quote: str
    sources: tuple[str, ...]

    @property
    def cited(self) -> str:
        return "; ".join(str(SOURCES[s]) for s in self.sources)

    @property
    def short(self) -> str:
        return "; ".join(SOURCES[s].short for s in self.sources)


STATEMENTS = {
    "C1": Statement(
        "A small learning rate is slow, a large one oscillates or diverges",
        '"If you pick a small learning rate, training will proceed slowly but surely ... if you '
        "pick a large learning rate, you could overshoot ... and get into an oscillating pattern "
        'where training never converges."',
        ("mccaffrey", "understanding"),
    ),
    "C2": Statement(
        "Momentum speeds up progress along narrow valleys",
        '"This can make the training process faster and more stable, especially for problems '
        'where the error surface has long, narrow valleys."',
        ("understanding", "ema"),
    ),
    "C3": Statement(
        "Momentum around 0.9 works well; too close to 1 overshoots",
        "\"A common starting point is to set gamma to around 0.9 ... If it's too high, the model "
        'might become unstable and overshoot the best solution."',
        ("understanding",),
    ),
    "C4": Statement(
        "Nesterov is faster and more stable than classical momentum",
        '"By looking ahead, NAG can correct its course more effectively, leading to faster and '
        'more stable learning."',
        ("understanding",),
    ),
    "C5": Statement(
        "Momentum is a per-weight adaptive learning rate",
        '"Put another way, momentum is a technique that creates an adaptive learning rate, and '
        'one that varies for different weights."',
        ("mccaffrey",),
    ),
    "C6": Statement(
        "Momentum rolls through small dips, and can roll past the global minimum",
        '"It can also help avoid getting stuck in small dips along the way." — "But that '
        "explanation doesn't fully explain why momentum wouldn't also jump over the global error "
        'minimum."',
        ("understanding", "mccaffrey"),
    ),
    "C7": Statement(
        "EMA momentum equals momentum without (1 - b) at lr scaled by (1 - b)",
        '"Another way to do it is by neglecting the (1- beta) term ... the only difference is '
        'that you need to scale learning rate by (1- beta) factor."',
        ("ema",),
    ),
    "C8": Statement(
        "Momentum schedules: anneal 0.5 -> 0.9, or rise linearly to 1",
        '"the value of momentum is usually initialized at around 0.5 and is slowly annealed to '
        '0.9" — "gamma_t = gamma_0 + (1 - gamma_0) t / T to increase gamma over time, where '
        '... T is the total number of training steps"',
        ("ema", "understanding"),
    ),
    "C9": Statement(
        "Restarting momentum every k steps helps",
        "\"You can also try using techniques like 'momentum restart.' This means resetting the "
        "momentum to zero at certain points during training ... v_t = 0 every k steps ... This "
        'can help the model avoid getting stuck and find the best solution more efficiently."',
        ("understanding",),
    ),
    "C10": Statement(
        "Momentum combined with RMSprop or Adam learns faster",
        '"By combining momentum with Adam or RMSprop, you get the smooth movement of momentum and '
        'the smart step adjustments of Adam or RMSprop. This can make the model learn faster."',
        ("understanding",),
    ),
    "C11": Statement(
        "An EMA of mini-batch gradients is closer to the full gradient",
        '"Exponential moving average helps us to give more importance to the most recent values '
        "of the derivatives ... and can provide us a better estimate which is closer to the "
        'actual derivative than our noisy calculations."',
        ("ema",),
    ),
    "C12": Statement(
        "In a ravine the steep components cancel and the shallow ones add up",
        '"If we will individually sum these vectors up, their components along the direction w1 '
        'cancel out, while the component along the w2 direction is reinforced."',
        ("ema",),
    ),
    "C13": Statement(
        "Momentum speeds up training with a reduced risk of oscillating",
        '"The purpose of momentum is to speed up training but with a reduced risk of oscillating."',
        ("mccaffrey",),
    ),
    "C14": Statement(
        "The benefit of momentum grows with the batch size",
        "Measured beside the sources' claims that momentum speeds up (mini-batch) training: "
        "at small batches SGD with and without momentum train alike once each has its own "
        "tuned learning rate; momentum's advantage appears at large batches.",
        ("mccaffrey", "shallue", "zhang"),
    ),
    "C15": Statement(
        "The momentum factor is a free parameter found by trial and error",
        '"The downside to using momentum is that the value of the momentum factor is a free '
        'parameter and you have to use trial and error to find a good value."',
        ("mccaffrey",),
    ),
    "E1": Statement(
        "Adaptive restart rescues too much momentum",
        "With more momentum than the conditioning calls for, accelerated gradient methods "
        "oscillate and slow down. Restarting the momentum whenever the function value rises, or "
        "the momentum points against the gradient, recovers the optimal linear rate without "
        "knowing the strong-convexity constant.",
        ("odonoghue",),
    ),
    "E2": Statement(
        "QHM, AggMo and Demon train faster than tuned heavy ball",
        "Each paper proposes a change to momentum SGD and reports faster or more stable training "
        "than momentum SGD at its tuned learning rate: quasi-hyperbolic momentum averages the "
        "gradient with its moving average, aggregated momentum averages several velocities, "
        "Demon decays the momentum to zero over training.",
        ("qhm", "aggmo", "demon"),
    ),
    "E3": Statement(
        "YellowFin's automatic tuning stands in for hand-tuning momentum SGD",
        '"We revisit the momentum SGD algorithm and show that hand-tuning a single learning '
        "rate and momentum makes it competitive with Adam ... we design YellowFin, an automatic "
        "tuner for momentum and learning rate in SGD ... We empirically show that YellowFin "
        'can converge in fewer iterations than Adam on ResNets and LSTMs."',
        ("yellowfin",),
    ),
    "E4": Statement(
        "Scheduled restart momentum (SRSGD) trains faster than SGD with constant momentum",
        '"SRSGD replaces the constant momentum in SGD by the increasing momentum in NAG but '
        "stabilizes the iterations by resetting the momentum to zero according to a schedule "
        "... SRSGD significantly improves convergence and generalization ... SRSGD reaches "
        "similar or even better error rates with significantly fewer training epochs compared "
        'to the SGD baseline."',
        ("srsgd",),
    ),
    "E5": Statement(
        "Cautious momentum speeds up training",
        '"We propose a single-line modification in Pytorch to any momentum-based optimizer, '
        "which we rename cautious optimizer ... showing not only speed-up on Llama and MAE "
        'pretraining up to 1.47 times" (first version); "consistent speed-up on LLM '
        "pretraining, but also image classification, with minimum extra tuning on "
        'hyperparameters" (revised version).',
        ("cautious",),
    ),
}


def experiments() -> dict:
    """``name -> module`` for every experiment (imported on demand: they pull in JAX models)."""
    from .claims import adaptive_lr
    from .claims import adaptive_methods
    from .claims import cautious
    from .claims import minima
    from .claims import momentum_size
    from .claims import nesterov
    from .claims import noise
    from .claims import oscillation
    from .claims import restart
    from .claims import schedules
    from .claims import srsgd
    from .claims import textbook
    from .claims import variants
    from .claims import yellowfin

    modules = (
        textbook,
        oscillation,
        momentum_size,
        nesterov,
        adaptive_lr,
        minima,
        schedules,
        restart,
        adaptive_methods,
        noise,
        variants,
        yellowfin,
        srsgd,
        cautious,
    )
    return {m.NAME: m for m in modules}
