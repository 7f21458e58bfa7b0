"""Word lists for synthetic districts.

Kept apart from the generator so the generator reads as structure, not data.  The lists are common
English words and US given/family names written for this project; they only need to be varied enough
that names collide now and then (as they do in real districts) and usernames must be de-duplicated.
"""

from __future__ import annotations

GIVEN_NAMES: tuple[str, ...] = (
    "Aaliyah", "Aaron", "Abigail", "Adam", "Addison", "Adrian", "Aiden", "Alejandro", "Alexa", "Alexander",
    "Alice", "Allison", "Alyssa", "Amara", "Amelia", "Amir", "Ana", "Andre", "Andrew", "Angel",
    "Anna", "Anthony", "Aria", "Ariana", "Asher", "Aubrey", "Audrey", "Aurora", "Austin", "Ava",
    "Avery", "Axel", "Bella", "Benjamin", "Brandon", "Brayden", "Brianna", "Brooklyn", "Caleb", "Camila",
    "Cameron", "Carlos", "Carter", "Charles", "Charlotte", "Chloe", "Christian", "Claire", "Colton", "Cooper",
    "Daniel", "David", "Delilah", "Diego", "Dominic", "Dylan", "Easton", "Eleanor", "Elena", "Eli",
    "Elijah", "Elizabeth", "Ella", "Ellie", "Emily", "Emma", "Ethan", "Eva", "Evelyn", "Ezra",
    "Faith", "Gabriel", "Gabriella", "Genesis", "Grace", "Grayson", "Hailey", "Hannah", "Harper", "Hazel",
    "Henry", "Hudson", "Hunter", "Ian", "Isaac", "Isabella", "Isaiah", "Ivy", "Jack", "Jackson",
    "Jacob", "Jade", "James", "Jasmine", "Jaxon", "Jayden", "Jeremiah", "John", "Jonathan", "Jordan",
    "Jose", "Joseph", "Joshua", "Josiah", "Julia", "Julian", "Kai", "Kaylee", "Kennedy", "Kevin",
    "Khloe", "Kinsley", "Layla", "Leah", "Leo", "Levi", "Liam", "Lily", "Lincoln", "Logan",
    "Lucas", "Lucy", "Luis", "Luke", "Luna", "Madelyn", "Madison", "Maria", "Mason", "Mateo",
    "Matthew", "Maya", "Mia", "Micah", "Michael", "Mila", "Miles", "Naomi", "Natalie", "Nathan",
    "Nevaeh", "Noah", "Nolan", "Nora", "Oliver", "Olivia", "Owen", "Paisley", "Parker", "Penelope",
    "Quinn", "Riley", "Robert", "Roman", "Ruby", "Ryan", "Samantha", "Samuel", "Santiago", "Sarah",
    "Savannah", "Scarlett", "Sebastian", "Serenity", "Skylar", "Sofia", "Sophia", "Stella", "Theodore", "Thomas",
    "Valentina", "Victoria", "Violet", "Wesley", "William", "Willow", "Wyatt", "Xavier", "Zoe", "Zoey",
)

FAMILY_NAMES: tuple[str, ...] = (
    "Adams", "Alexander", "Allen", "Alvarez", "Anderson", "Bailey", "Baker", "Barnes", "Bell", "Bennett",
    "Brooks", "Brown", "Bryant", "Butler", "Campbell", "Carter", "Castillo", "Chavez", "Clark", "Coleman",
    "Collins", "Cook", "Cooper", "Cox", "Cruz", "Davis", "Diaz", "Edwards", "Evans", "Fisher",
    "Flores", "Foster", "Garcia", "Gomez", "Gonzalez", "Gray", "Green", "Griffin", "Gutierrez", "Hall",
    "Hamilton", "Harris", "Hayes", "Henderson", "Hernandez", "Hill", "Howard", "Hughes", "Jackson", "James",
    "Jenkins", "Jimenez", "Johnson", "Jones", "Kelly", "Kim", "King", "Lee", "Lewis", "Long",
    "Lopez", "Martin", "Martinez", "Mendoza", "Miller", "Mitchell", "Moore", "Morales", "Morgan", "Morris",
    "Murphy", "Myers", "Nelson", "Nguyen", "Ortiz", "Parker", "Patel", "Patterson", "Perez", "Perry",
    "Peterson", "Phillips", "Powell", "Price", "Ramirez", "Reed", "Reyes", "Richardson", "Rivera", "Roberts",
    "Robinson", "Rodriguez", "Rogers", "Ross", "Ruiz", "Russell", "Sanchez", "Sanders", "Scott", "Simmons",
    "Smith", "Stewart", "Sullivan", "Taylor", "Thomas", "Thompson", "Torres", "Tran", "Turner", "Walker",
    "Ward", "Washington", "Watson", "White", "Williams", "Wilson", "Wood", "Wright", "Young", "Zhang",
)

DISTRICT_PLACES: tuple[str, ...] = (
    "Maple Valley", "Cedar Ridge", "Riverbend", "Pine Hollow", "Lakeside", "Willow Creek", "Granite Falls",
    "Harbor Point", "Silver Lake", "Oak Meadow", "Stony Brook", "Fox Run", "Clearwater", "Eagle Crest",
)

SCHOOL_NAME_WORDS: tuple[str, ...] = (
    "Lincoln", "Washington", "Jefferson", "Roosevelt", "Franklin", "Madison", "Hamilton", "Kennedy",
    "Adams", "Jackson", "Monroe", "Garfield", "Hoover", "Truman", "Wilson", "Grant", "Cleveland", "Taft",
    "Sunrise", "Sunset", "Meadowbrook", "Hillcrest", "Fairview", "Parkside", "Brookside", "Westwood",
    "Eastview", "Northgate", "Southridge", "Highland", "Valley View", "Riverside", "Lakeview", "Pinecrest",
    "Oakwood", "Elmwood", "Birchwood", "Cedarwood", "Maplewood", "Willowbrook", "Springfield", "Greenfield",
    "Harmony", "Liberty", "Discovery", "Horizon", "Summit", "Pioneer", "Heritage", "Frontier", "Mountain View",
    "Bayside", "Prairie", "Canyon", "Mesa", "Redwood", "Sequoia", "Aspen", "Juniper", "Magnolia",
)

STREET_NAMES: tuple[str, ...] = (
    "Main", "Oak", "Pine", "Maple", "Cedar", "Elm", "Washington", "Lake", "Hill", "Park", "River", "Church",
)

CITIES_OF_BIRTH: tuple[tuple[str, str], ...] = (
    ("Springfield", "IL"), ("Columbus", "OH"), ("Austin", "TX"), ("Denver", "CO"), ("Phoenix", "AZ"),
    ("Portland", "OR"), ("Madison", "WI"), ("Albany", "NY"), ("Raleigh", "NC"), ("Boise", "ID"),
    ("Sacramento", "CA"), ("Richmond", "VA"), ("Omaha", "NE"), ("Tampa", "FL"), ("Salem", "MA"),
)
